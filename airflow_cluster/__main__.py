from airflow_cluster.cli import main

raise SystemExit(main())
