"""The benchmark pipeline (benchmark/dvc.yaml): this project's model against the assignment's
reference at several latent budgets, one cached DVC stage per model and budget."""
