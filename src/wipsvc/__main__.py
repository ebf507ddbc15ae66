from wipsvc.cli import main

main()
