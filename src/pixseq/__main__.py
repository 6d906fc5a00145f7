from pixseq.cli import main

raise SystemExit(main())
