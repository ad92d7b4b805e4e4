"""Recipe: create a dossier, wait for its asynchronous creation, handle the E-codes."""

from __future__ import annotations

import asyncio

from _connect import connect

import eattest_async as ea


async def main() -> None:
    async with connect(dossiers=100, process_delay=0.1) as client:
        supplier = (await client.thirdparties.list(page_size=1)).items[0]
        try:
            process = await client.dossiers.create(
                ea.NewDossier(
                    company_id_type="CIT001",
                    company_id_value=supplier.siret or "",
                    dossier_reference="RECIPE-1",
                    required_documents=["ATT_VIGI", "JUSTIF_IMM"],
                    thirdparty_email=["achats@example.com"],
                )
            )
            status = await client.processes.wait(process.process_id, timeout=60, interval=0.2)
        except ea.InvalidInputError as error:
            print(f"fix the input first: {error}")
            return
        except ea.DossierCreationError as error:
            print(f"refused ({', '.join(error.codes)}): {error.messages}")
            return
        print(f"dossier {status.dossier_id} created by process {process.process_id}")


if __name__ == "__main__":
    asyncio.run(main())
