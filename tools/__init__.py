"""Developer commands that are not part of the installed packages (`make demo-k8s`)."""
