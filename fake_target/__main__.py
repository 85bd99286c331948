from fake_target.cli import main

main()
