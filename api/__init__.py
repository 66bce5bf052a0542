"""The HTTP face of Blockwatch (Flask + flask-restx). Arrives with the HTTP API issue."""
