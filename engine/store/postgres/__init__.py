"""The store on PostgreSQL: the SQLite store's parts and statements over psycopg.

dialect     the store's SQLite statements as PostgreSQL runs them (sql/ holds those written
            otherwise, by the same names)
connection  psycopg connections in the shape of the sqlite3 and aiosqlite ones the parts use
writer      the group commit over a psycopg connection
schema      schema.sql and its versions (the table tiercel_schema)
database    the owner's lock, the writer and the reader pool (`PostgresDatabase`)
"""

from __future__ import annotations

from .database import PostgresDatabase

__all__ = ["PostgresDatabase"]
