"""Local stand-ins for the services this machine cannot reach: Azurite (Storage), a Microsoft
Graph simulator, a Pega simulator, and a small Functions host that runs function_app.py."""
