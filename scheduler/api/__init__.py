"""The scheduler's REST API (/api/v1/jobs/, /api/v1/clusters/), registered on the router in config/api_urls.py."""
