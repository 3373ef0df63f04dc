from klaviyo_etl.cli import main

if __name__ == "__main__":  # worker processes (forkserver) import this module too
    main()
