"""Date formats per language (FORMAT_MODULE_PATH): Django's own are overridden where they read badly."""
