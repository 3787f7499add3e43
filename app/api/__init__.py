"""REST APIs (FAB ModelRestApi / BaseApi), JWT-authenticated, scoped like the views."""
