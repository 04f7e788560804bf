
QBO
@/tmp/golden-tables-ur7qtb5c/raw/46618d57ea1440b6b347e1eb087cf19f
	parquet