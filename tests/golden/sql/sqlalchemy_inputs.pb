

exclude


name-995

min_id

Þ