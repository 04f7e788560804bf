
)
host!

golden.invalid:59999/admin?