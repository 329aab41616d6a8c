"""core/integrations."""
