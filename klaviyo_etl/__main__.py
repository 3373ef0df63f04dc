from klaviyo_etl.cli import main

main()
