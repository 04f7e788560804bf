


hashed ✓"sha256:489007f1042d0053