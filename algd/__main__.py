from algd.cli import main

raise SystemExit(main())
