"""Scoring of teacher responses: learnability by the student, quality, and their combination."""
