from haig.cli import main

raise SystemExit(main())
