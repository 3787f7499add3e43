"""Flask-AppBuilder glue that the web pages (app.views) and the REST API (app.api)
share: the grids' data interface (datamodel), per-request filters (filters),
the hour record's column labels (labels) and the national export's file
responses (national_files).  Below the views and the API, above the services."""
