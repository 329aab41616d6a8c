"""Shared plumbing: atomic files, secret masking, logging, alerts, sd_notify, resources."""
