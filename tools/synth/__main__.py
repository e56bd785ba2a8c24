from tools.synth.cli import main

raise SystemExit(main())
