"""Import-check a folder of Airflow plugins with the cluster's own Airflow; exit 1 when any module fails to import.

Airflow loads every Python file of [core] plugins_folder as a module, with the folder on sys.path; this does the
same with the staging folder, so a plugin that would break the components is refused before it is published.
"""

import importlib.util
import inspect
import os
import sys
import traceback
from pathlib import Path


def modules(folder: Path):
    for path in sorted(folder.rglob("*.py")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        yield rel, path


def main() -> int:
    folder = Path(sys.argv[1]).resolve()
    sys.path.insert(0, str(folder))
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(folder)
    from airflow.plugins_manager import AirflowPlugin

    errors, plugins = 0, []
    for rel, path in modules(folder):
        name = "airflow_cluster_check_" + "_".join(rel.with_suffix("").parts)
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        except Exception:  # noqa: BLE001 - any failure to import is what this check reports
            errors += 1
            last = traceback.format_exc().strip().splitlines()[-1]
            print(f"IMPORT ERROR {rel}: {last}")
            continue
        plugins += [
            obj.name for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, AirflowPlugin) and obj is not AirflowPlugin
        ]
    print(f"checked {folder}: {len(plugins)} plugin(s) {sorted(plugins)}, {errors} import error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
