"""Admin endpoints (`/v2/admin/…`, admin-scoped keys only): keys, tenants, limits and usage of all tenants."""
