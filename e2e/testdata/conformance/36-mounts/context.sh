echo ctx > ctxfile
