"""Attribution engine (issue 7): conversion paths from REDS events and six credit models.

Modules: `paths` (read events with COPY into polars, build paths), `models` (the credit rules),
`engine` (parameters, one run of every requested model, caching), `selectors` (names, data stamp),
`api` (GET /o/<slug>/api/v1/attribution), `views` + `urls` (the comparison page and its CSV).
No tables of its own: everything is computed on the fly from `ingestion_store_redsevent`.
"""
