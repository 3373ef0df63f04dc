from klaviyo_etl.cli import main

if __name__ == "__main__":  # parse worker processes (spawn) import this module too
    main()
