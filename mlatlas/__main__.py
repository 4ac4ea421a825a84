from mlatlas.cli import main

raise SystemExit(main())
