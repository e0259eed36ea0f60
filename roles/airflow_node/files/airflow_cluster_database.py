"""[database] sql_alchemy_connect_args of this cluster's Airflow when the metadata database is replicated.

Airflow's components reach a replicated database through their host's HAProxy, which accepts a connection at once
and only then opens its own to the primary. When the primary loses power while a connection is being opened, that
connection would wait forever for the server's first answer (psycopg2 has no limit by default): the limit below lets
it fail, and SQLAlchemy's next attempt reaches the new primary. The async driver (asyncpg) has its own limit of 60 s.
"""

CONNECT_ARGS = {"connect_timeout": 10}
