"""The flask-restx namespaces, one module per resource."""
