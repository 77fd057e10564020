"""The web layer of transfers: the sender's pages, the uploader's JSON endpoints and the guest pages.

sender.py   New transfer, My transfers, a transfer's page (upload page while pending), revoke/extend/resend
uploads.py  the JSON endpoints the uploader (static/js/send.js) calls for each file
guests.py   the link's page, the one-time code, the guest's file list and downloads
"""
