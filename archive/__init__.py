"""Compliance archive of case PDFs: one PDF/A-3b per case version, kept two years, provably intact.

Modules, each with one job:
- record      CaseRecord / ThreadMessage (plain data), labels, mask_phone
- render      render_case_pdf(record, lang=, version=, final=) -> PDF/A-3b bytes (weasyprint,
              templates/pdf; customer HTML sanitised; fetches nothing but template assets)
- fonts       builds the CJK font subsets in templates/pdf/fonts (python -m archive.fonts)
- naming      archive_path(customer, date, type_label, ticket_ref, version, final)
- storage     Storage protocol (put/get/delete/list/exists), LocalStorage
- models      archive_files, archive_audit, archive_jobs (migration 0002_archive)
- integrity   hash chain, MANIFEST.jsonl, verify(session, storage) -> [Problem]
- retention   RetentionPolicy, purge, delete_archived (the only deletion path), hold, release
- search      search(session, Query) and export_zip(rows, storage, target, progress)
- writer      store + record one rendered version (row, chain link, audit)
- worker      ArchiveWorker (process pool, retries), enqueue(session, ticket_id, reason)
- from_tickets  TicketLoader: a CaseRecord from intake's tables
- sample      a realistic Chinese case for tests, benchmarks and demos
"""
