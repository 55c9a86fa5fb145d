"""The generated paper: computed values, provenance and rendering (Quarto or pandoc + typst)."""
