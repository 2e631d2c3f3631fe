from finops_operator.cli import main

main()
