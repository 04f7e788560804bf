
QBO
@/tmp/golden-tables-ur7qtb5c/raw/e6c71d8e790b1e02ebb254ca7bb56f4c
	parquet