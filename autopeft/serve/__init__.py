"""The service: `autopeft serve`, one long-running process through which a team launches, watches, stops,
resumes and audits searches.

It sits at the top of the imports beside `cli`: it runs the same `autopeft search` and `autopeft audit`
commands the CLI runs, as worker processes (or Ray jobs), and the drivers know nothing of it.

    settings        ServiceSettings: the validated `autopeft serve` flags
    service_error   ServiceError: a refusal with its HTTP status and one-line message
    auth            AccessTokens: who may read and who may change
    data_roots      DataRoots: which files a request may name
    records         JobRecord and JobStore: the jobs in a real database (SQLAlchemy)
    worker          LocalRunner: each job one `autopeft ...` subprocess in its own process group
    ray_jobs        RayRunner: search jobs as Ray jobs (--ray-address)
    job_queue       JobQueue: queued jobs, at most --max-jobs running, recovery after a crash
    studies         StudyCatalog: the run directories under --root, summarised
    search_service  SearchService: create, resume, stop, delete searches and audits (validation first)
    api_models      the JSON bodies of the API (pydantic)
    api             the JSON routes (/api/...)
    pages, page_html  the browser pages
    app             create_app: the FastAPI app, its middleware and error handlers
"""
