
QBO
@/tmp/golden-tables-ur7qtb5c/raw/6406d8794942fb3d96f3ebc4e76eba9e
	parquet