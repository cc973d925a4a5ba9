from alphagan_video.cli import main

main()
