"""The HTTP service: ``create_app(settings)`` builds it; ``filterd serve`` runs it."""
