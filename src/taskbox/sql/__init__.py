"""SQL support shared by the ``sqlite`` and ``sql`` executors: templates, results, archives, errors.

Why: flytekit's SQL tasks splice input values into the query text with ``str()``, load whole results
into pandas, commit writes and log the connection URI. This package holds the pieces that make the same
templates safe and bounded, independent of any one database driver:

* :mod:`taskbox.sql.templating` compiles ``{{ .inputs.x }}`` placeholders to bound parameters;
* :mod:`taskbox.sql.outputs` maps a result onto the declared outputs (a dataset, one row, nothing);
* :mod:`taskbox.sql.results` streams a cursor into Parquet, column by column, without pandas;
* :mod:`taskbox.sql.archives` unpacks a downloaded database archive without trusting it;
* :mod:`taskbox.sql.sqlite` fetches, caches and opens an untrusted SQLite file read-only;
* :mod:`taskbox.sql.dialects` holds per-database session settings (read-only, timeouts, drivers);
* :mod:`taskbox.sql.postgres` streams PostgreSQL results with heavy types converted by Arrow;
* :mod:`taskbox.sql.config` holds the config fields both executors share;
* :mod:`taskbox.sql.errors` maps driver exceptions onto taskbox's USER/SYSTEM errors.

Invariants:
    * Importing this package imports nothing heavy; sqlglot, SQLAlchemy and pyarrow load inside the
      functions that need them.
    * An input value never becomes SQL text: it is a bound parameter, or (identifiers only) one of the
      values the template's author allow-listed, quoted by the dialect.
"""
