"""Rule language, loader and lint, compiler, backends, differential and trace."""
