"""Recipe: the files of one supplier's dossiers, into a folder, checked against their size."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from _connect import connect


async def main(folder: str) -> None:
    async with connect(dossiers=200) as client:
        first = (await client.dossiers.list(page_size=1)).items[0]
        dossiers = await client.dossiers.list(siret=first.siret)
        written = []
        for dossier in dossiers:
            for document in dossier.documents:
                for file in document.files:
                    target = Path(folder) / str(dossier.dossier_id)
                    target.mkdir(parents=True, exist_ok=True)
                    written.append(
                        await client.files.download(
                            dossier.dossier_id or 0,
                            document.document_id or 0,
                            file.file_id or 0,
                            dest=target,
                            expected_size=file.file_size,
                        )
                    )
        print(f"{len(written)} files of SIRET {first.siret} in {folder}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "downloads"))
