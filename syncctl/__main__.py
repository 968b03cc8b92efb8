from syncctl.cli.main import main

main()
