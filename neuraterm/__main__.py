from neuraterm import main

main()
