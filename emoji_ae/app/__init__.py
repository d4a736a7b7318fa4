"""Using a trained model outside the pipeline: the `emoji-ae` command and its local web page."""
