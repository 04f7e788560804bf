

host

golden.invalid