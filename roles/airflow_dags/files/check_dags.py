"""Import-check a folder of DAG files with the cluster's own Airflow; exit 1 when any file fails to import."""

import os
import sys
from pathlib import Path


def main() -> int:
    folder = Path(sys.argv[1]).resolve()
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(folder), safe_mode=False)
    for path, message in sorted(bag.import_errors.items()):
        lines = [line for line in str(message).strip().splitlines() if line.strip()]
        rel = os.path.relpath(path, folder)
        print(f"IMPORT ERROR {rel}: {lines[-1] if lines else 'unknown error'}")
    print(f"checked {folder}: {len(bag.dags)} DAG(s), {len(bag.import_errors)} import error(s)")
    return 1 if bag.import_errors else 0


if __name__ == "__main__":
    sys.exit(main())
