from sandbox.run import main

raise SystemExit(main())
