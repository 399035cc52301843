from matxfer.cli import main

raise SystemExit(main())
