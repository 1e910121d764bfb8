"""Audits: a sample of an annotated dataset's faces judged by a person (or ground truth), the evidence of how the MAC
errs on that dataset. ``format`` is the file contract; the analysis reads audits with ``analyze.audit``."""
