from neuraterm.entry import main

main()
