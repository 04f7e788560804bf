

x



who


flytekit