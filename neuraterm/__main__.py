from neuraterm.cli import main

main()
