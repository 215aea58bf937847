from greentrack.cli import main

main()
